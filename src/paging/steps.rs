//! Per-person notification rules (`responders[].notify`): which of a person's channels a
//! page reaches at once, and which wait for their step's `after` unless the incident is
//! acknowledged first. Pure: the engine keeps the waiting steps in the incident's
//! [`PagingState`] (so they outlive a restart) and fires them on a timer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::page::{Channel, PageEvent, Recipient};
use super::state::PagingState;
use super::Paging;
use crate::config::Duration;

/// A step of a person's notification rules waiting for its time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitingStep {
    pub at: DateTime<Utc>,
    pub recipient: Recipient,
    /// The step's `after` (for the timeline).
    pub after: Duration,
    /// What the page that started the steps was (its event, policy and level).
    pub event: PageEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
}

/// What one page does to each of its recipients.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Paged now.
    pub now: Vec<Recipient>,
    /// Paged at their step's time unless the incident is acknowledged first.
    pub later: Vec<WaitingStep>,
}

/// The page in hand: its event, policy and level, and whether its incident is acknowledged.
pub struct PageOf<'a> {
    pub event: PageEvent,
    pub policy: Option<&'a str>,
    pub level: Option<usize>,
    pub acknowledged: bool,
}

/// How a recipient's channel is named in a `via:`.
pub fn via_of(recipient: &Recipient) -> String {
    match recipient.channel {
        Channel::Email => "email".to_string(),
        Channel::Webhook => format!("webhook:{}", recipient.address),
    }
}

/// Split a page's recipients by their person's notification rules. A responder without
/// rules is paged on each channel at once; with rules, each channel is paged at each step
/// that names it (`after: 0s` at once), and a channel no step names is not paged. While
/// the incident is acknowledged no later step is kept, but the person's first step (the
/// smallest `after`) goes at once, so nobody paged goes unreached.
pub fn plan(
    paging: &Paging,
    recipients: Vec<Recipient>,
    page: &PageOf,
    now: DateTime<Utc>,
) -> Plan {
    let mut out = Plan::default();
    for recipient in recipients {
        let Some(steps) = paging
            .responders
            .get(&recipient.id)
            .and_then(|r| r.notify.as_deref())
        else {
            out.now.push(recipient);
            continue;
        };
        let first = steps.iter().map(|s| s.after).min().unwrap_or_default();
        let via = via_of(&recipient);
        let mut now_too = false;
        for step in steps.iter().filter(|s| s.via == via) {
            if step.after.is_zero() || (page.acknowledged && step.after == first) {
                now_too = true;
            } else if !page.acknowledged {
                out.later.push(WaitingStep {
                    at: now + step.after.chrono(),
                    recipient: recipient.clone(),
                    after: step.after,
                    event: page.event,
                    policy: page.policy.map(str::to_string),
                    level: page.level,
                });
            }
        }
        if now_too {
            out.now.push(recipient);
        }
    }
    out
}

/// Keep a page's later steps: they replace the steps still waiting from an earlier page to
/// the same people (each page starts its recipients' steps over).
pub fn keep(state: &mut PagingState, later: Vec<WaitingStep>, paged: &[Recipient]) {
    let restarted = |r: &Recipient| {
        paged
            .iter()
            .chain(later.iter().map(|s| &s.recipient))
            .any(|p| p.id == r.id)
    };
    state.steps.retain(|s| !restarted(&s.recipient));
    state.steps.extend(later);
    state.steps.sort_by_key(|s| s.at);
}

/// Take the steps due at `now`.
pub fn due(state: &mut PagingState, now: DateTime<Utc>) -> Vec<WaitingStep> {
    let (due, waiting) = std::mem::take(&mut state.steps)
        .into_iter()
        .partition(|s| s.at <= now);
    state.steps = waiting;
    due
}

/// When the next step is due.
pub fn next_due(state: &PagingState) -> Option<DateTime<Utc>> {
    state.steps.iter().map(|s| s.at).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NotifyStep, ResponderConfig};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_000_000 + secs, 0).unwrap()
    }

    fn alice(notify: Option<Vec<(u64, &str)>>) -> Paging {
        let mut paging = Paging::default();
        paging.responders.insert(
            "alice".into(),
            ResponderConfig {
                id: "alice".into(),
                name: None,
                email: Some("alice@example.com".into()),
                webhook: Some("slack".into()),
                timezone: None,
                notify: notify.map(|steps| {
                    steps
                        .into_iter()
                        .map(|(after, via)| NotifyStep {
                            after: Duration::from_secs(after),
                            via: via.into(),
                        })
                        .collect()
                }),
            },
        );
        paging
    }

    fn channels() -> Vec<Recipient> {
        vec![
            Recipient {
                id: "alice".into(),
                channel: Channel::Email,
                address: "alice@example.com".into(),
            },
            Recipient {
                id: "alice".into(),
                channel: Channel::Webhook,
                address: "slack".into(),
            },
        ]
    }

    fn page(acknowledged: bool) -> PageOf<'static> {
        PageOf {
            event: PageEvent::Triggered,
            policy: Some("storage"),
            level: Some(0),
            acknowledged,
        }
    }

    fn vias(recipients: &[Recipient]) -> Vec<String> {
        recipients.iter().map(via_of).collect()
    }

    #[test]
    fn without_rules_every_channel_is_paged_at_once() {
        let plan = plan(&alice(None), channels(), &page(false), t(0));
        assert_eq!(vias(&plan.now), ["email", "webhook:slack"]);
        assert!(plan.later.is_empty());
    }

    #[test]
    fn webhook_at_once_and_email_after_two_minutes() {
        let rules = alice(Some(vec![(0, "webhook:slack"), (120, "email")]));
        let plan = plan(&rules, channels(), &page(false), t(0));
        assert_eq!(vias(&plan.now), ["webhook:slack"]);
        assert_eq!(plan.later.len(), 1);
        assert_eq!(plan.later[0].at, t(120));
        assert_eq!(via_of(&plan.later[0].recipient), "email");
        assert_eq!(plan.later[0].policy.as_deref(), Some("storage"));
    }

    #[test]
    fn a_channel_no_step_names_is_not_paged_and_a_channel_may_come_twice() {
        let rules = alice(Some(vec![(0, "webhook:slack"), (300, "webhook:slack")]));
        let plan = plan(&rules, channels(), &page(false), t(0));
        assert_eq!(vias(&plan.now), ["webhook:slack"]);
        assert_eq!(vias(&[plan.later[0].recipient.clone()]), ["webhook:slack"]);
        assert_eq!(plan.later[0].at, t(300));
    }

    #[test]
    fn on_an_acknowledged_incident_only_the_first_step_goes_and_at_once() {
        let rules = alice(Some(vec![(60, "email"), (120, "webhook:slack")]));
        let plan = plan(&rules, channels(), &page(true), t(0));
        assert_eq!(vias(&plan.now), ["email"]);
        assert!(plan.later.is_empty());
    }

    #[test]
    fn a_new_page_starts_the_persons_steps_over_and_due_steps_leave_in_order() {
        let rules = alice(Some(vec![(0, "webhook:slack"), (120, "email")]));
        let mut state = PagingState::default();
        let first = plan(&rules, channels(), &page(false), t(0));
        keep(&mut state, first.later, &first.now);
        let second = plan(&rules, channels(), &page(false), t(60));
        keep(&mut state, second.later, &second.now);
        assert_eq!(next_due(&state), Some(t(180)));
        assert!(due(&mut state, t(179)).is_empty());
        let fired = due(&mut state, t(180));
        assert_eq!(fired.len(), 1);
        assert!(state.steps.is_empty());
        assert_eq!(next_due(&state), None);
    }
}
