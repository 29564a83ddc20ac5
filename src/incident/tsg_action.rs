//! A TSG action's run for one incident: tocsin called the action's webhook when the incident
//! opened, and waits for the action to report back (`POST /api/v1/incidents/{id}/tsg`) until
//! its deadline. Kept in the incident's stored JSON, so a restart resumes the wait.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsgOutcome {
    /// It reported that the mitigation worked.
    Succeeded,
    /// It reported that the mitigation did not work.
    Failed,
    /// It did not report back within its timeout: counted as failed.
    TimedOut,
}

impl TsgOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TsgOutcome::Succeeded => "succeeded",
            TsgOutcome::Failed => "failed",
            TsgOutcome::TimedOut => "timed_out",
        }
    }

    /// `succeeded` or `failed`, as an action reports them.
    pub fn parse_report(text: &str) -> Option<TsgOutcome> {
        match text {
            "succeeded" => Some(TsgOutcome::Succeeded),
            "failed" => Some(TsgOutcome::Failed),
            _ => None,
        }
    }
}

/// One run of a TSG action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TsgAction {
    /// The webhook of `notifiers.webhooks` that was called.
    pub webhook: String,
    /// The TSG the action belongs to.
    pub url: String,
    /// Where the TSG came from: `rule NAME` or `service NAME`.
    pub from: String,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub called_at: DateTime<Utc>,
    /// No report by then counts as failed.
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub deadline: DateTime<Utc>,
    /// `None` while the action runs.
    #[serde(default)]
    pub outcome: Option<TsgOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who reported the outcome (`tocsin` for a time-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<String>,
    #[serde(
        default,
        serialize_with = "crate::signal::rfc3339::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub reported_at: Option<DateTime<Utc>>,
    /// Its timeline says the incident waits for it (once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waited: bool,
}

impl TsgAction {
    pub fn is_pending(&self) -> bool {
        self.outcome.is_none()
    }

    /// The action failed or timed out: the incident goes to its triage queue.
    pub fn failed(&self) -> bool {
        matches!(
            self.outcome,
            Some(TsgOutcome::Failed | TsgOutcome::TimedOut)
        )
    }
}

/// A step of a TSG action, as the incident's timeline tells it.
#[derive(Clone, Debug, PartialEq)]
pub enum TsgStep {
    /// tocsin called the action's webhook.
    Called {
        webhook: String,
        url: String,
        from: String,
        deadline: DateTime<Utc>,
    },
    /// A route queues the incident, but its TSG action has not reported yet.
    Waiting { webhook: String },
    /// The action reported back.
    Reported {
        outcome: TsgOutcome,
        note: Option<String>,
        by: String,
    },
    /// The action did not report back in time.
    TimedOut {
        webhook: String,
        deadline: DateTime<Utc>,
    },
}

impl TsgStep {
    pub fn kind(&self) -> &'static str {
        match self {
            TsgStep::Called { .. } => "tsg_action_called",
            TsgStep::Waiting { .. } => "tsg_action_waiting",
            TsgStep::Reported {
                outcome: TsgOutcome::Succeeded,
                ..
            } => "tsg_action_succeeded",
            TsgStep::Reported { .. } => "tsg_action_failed",
            TsgStep::TimedOut { .. } => "tsg_action_timed_out",
        }
    }

    pub fn actor(&self) -> Option<&str> {
        match self {
            TsgStep::Reported { by, .. } => Some(by),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            TsgStep::Called {
                webhook,
                url,
                from,
                deadline,
            } => format!(
                "TSG action called: webhook {webhook} (the TSG of {from}, {url}); it reports \
                 back by {}",
                deadline.to_rfc3339()
            ),
            TsgStep::Waiting { webhook } => format!(
                "waits for its TSG action (webhook {webhook}) before any triage queue: queued \
                 only if the action fails"
            ),
            TsgStep::Reported { outcome, note, by } => {
                let note = note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default();
                match outcome {
                    TsgOutcome::Succeeded => format!(
                        "TSG action succeeded (reported by {by}){note}; no triage queue, it \
                         resolves when its impacts clear"
                    ),
                    _ => format!("TSG action failed (reported by {by}){note}"),
                }
            }
            TsgStep::TimedOut { webhook, deadline } => format!(
                "TSG action (webhook {webhook}) did not report back by {}: counted as failed",
                deadline.to_rfc3339()
            ),
        }
    }

    pub fn data(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            TsgStep::Called {
                webhook,
                url,
                from,
                deadline,
            } => json!({
                "webhook": webhook, "tsg": url, "from": from, "deadline": deadline.to_rfc3339()
            }),
            TsgStep::Waiting { webhook } => json!({ "webhook": webhook }),
            TsgStep::Reported { outcome, note, .. } => {
                json!({ "outcome": outcome.as_str(), "note": note })
            }
            TsgStep::TimedOut { webhook, deadline } => {
                json!({ "webhook": webhook, "outcome": "timed_out", "deadline": deadline.to_rfc3339() })
            }
        }
    }
}
