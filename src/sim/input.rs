//! Timed inputs for simulations: signals, heartbeats and people's actions.
//!
//! `at` is either an offset from the simulation's start (`90s`, `5m`) or an RFC 3339 time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::config::types::labels;
use crate::config::{Duration, SrResponseConfig};
use crate::engine::{CaseInput, Input};
use crate::incident::case::OpenCase;
use crate::signal::{Contact, CriDetails, ProbeResult, Signal, SignalState, SourceKind};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedInput {
    pub at: String,
    #[serde(default)]
    pub source: Option<SourceKind>,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "labels")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub state: Option<SignalState>,
    #[serde(default)]
    pub probe: Option<ProbeResult>,
    /// A pushed alert's `endsAt` (offset or time).
    #[serde(default)]
    pub ends_at: Option<String>,
    /// A pushed alert's lease from each send: `endsAt` = send time + lease.
    #[serde(default)]
    pub lease: Option<Duration>,
    /// Send the same signal again at this interval…
    #[serde(default)]
    pub every: Option<Duration>,
    /// …up to and including this time.
    #[serde(default)]
    pub until: Option<String>,
    /// A CRI's summary and contact.
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub contact: Option<Contact>,
    #[serde(default)]
    pub heartbeat: Option<String>,
    #[serde(default)]
    pub ack: Option<AckAction>,
    #[serde(default)]
    pub resolve: Option<ResolveAction>,
    #[serde(default)]
    pub severity: Option<SeverityAction>,
    /// Something support does to a case.
    #[serde(default)]
    pub case: Option<CaseAction>,
    /// An incident's TSG action reports back.
    #[serde(default)]
    pub tsg: Option<TsgReportAction>,
}

/// One step of support's on a case: `open:` a case (its facts), or `respond:`, `update:`,
/// `ack:`, `take:`, `exit:` or `resolve:` case N; `by` who, `text` what they wrote.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseAction {
    #[serde(default)]
    pub open: Option<OpenCaseAction>,
    #[serde(default)]
    pub respond: Option<i64>,
    #[serde(default)]
    pub update: Option<i64>,
    #[serde(default)]
    pub ack: Option<i64>,
    #[serde(default)]
    pub take: Option<i64>,
    #[serde(default)]
    pub exit: Option<i64>,
    #[serde(default)]
    pub resolve: Option<i64>,
    pub by: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub notify_customer: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCaseAction {
    pub customer: String,
    pub service: String,
    pub region: String,
    pub sr_severity: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub contact: Option<Contact>,
}

impl CaseAction {
    /// The engine's input for this step.
    fn input(&self, at: &str, sr_response: &SrResponseConfig) -> Result<CaseInput, String> {
        let by = self.by.clone();
        let text = || self.text.clone().unwrap_or_default();
        let steps = [
            self.open.is_some(),
            self.respond.is_some(),
            self.update.is_some(),
            self.ack.is_some(),
            self.take.is_some(),
            self.exit.is_some(),
            self.resolve.is_some(),
        ];
        if steps.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "case input at {at}: give exactly one of open:, respond:, update:, ack:, take:, \
                 exit: or resolve:"
            ));
        }
        if let Some(open) = &self.open {
            if sr_response.deadline(&open.sr_severity).is_none() {
                return Err(format!(
                    "case input at {at}: sr_severity {:?} is not one of A, B or C",
                    open.sr_severity
                ));
            }
            return Ok(CaseInput::Open {
                case: OpenCase {
                    customer: open.customer.clone(),
                    service: open.service.clone(),
                    region: open.region.clone(),
                    sr_severity: open.sr_severity.clone(),
                    summary: open.summary.clone().unwrap_or_default(),
                    contact: open.contact.clone().unwrap_or_default(),
                    by,
                },
            });
        }
        Ok(match () {
            _ if self.respond.is_some() => CaseInput::Respond {
                id: self.respond.unwrap_or_default(),
                by,
                text: text(),
            },
            _ if self.update.is_some() => CaseInput::Update {
                id: self.update.unwrap_or_default(),
                by,
                text: text(),
                notify_customer: self.notify_customer,
            },
            _ if self.ack.is_some() => CaseInput::Ack {
                id: self.ack.unwrap_or_default(),
                by,
            },
            _ if self.take.is_some() => CaseInput::Take {
                id: self.take.unwrap_or_default(),
                by,
            },
            _ if self.exit.is_some() => CaseInput::CustomerExit {
                id: self.exit.unwrap_or_default(),
                by,
                note: self.text.clone(),
            },
            _ => CaseInput::Resolve {
                id: self.resolve.unwrap_or_default(),
                by,
                note: self.text.clone(),
            },
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsgReportAction {
    pub incident: i64,
    /// `succeeded` or `failed`.
    pub status: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default = "tsg_action_by")]
    pub by: String,
}

fn tsg_action_by() -> String {
    "tsg-action".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckAction {
    pub incident: i64,
    pub by: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveAction {
    pub incident: i64,
    pub by: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityAction {
    pub incident: i64,
    pub severity: Option<u8>,
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `5m` from `start`, or an absolute RFC 3339 time.
pub fn parse_at(text: &str, start: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    text.parse::<Duration>()
        .map(|d| start + d.chrono())
        .map_err(|_| {
            format!(
                "invalid time {text:?}: expected an offset such as 90s or 5m, or an RFC 3339 time"
            )
        })
}

impl TimedInput {
    /// The inputs this entry stands for, with their times.
    pub fn expand(
        &self,
        start: DateTime<Utc>,
        sr_response: &SrResponseConfig,
        sequence: &mut u64,
    ) -> Result<Vec<(DateTime<Utc>, Input)>, String> {
        let at = parse_at(&self.at, start)?;
        let actions = [
            self.ack.is_some(),
            self.resolve.is_some(),
            self.severity.is_some(),
            self.heartbeat.is_some(),
            self.source.is_some(),
            self.case.is_some(),
            self.tsg.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            return Err(format!(
                "input at {}: give exactly one of source:, heartbeat:, ack:, resolve:, \
                 severity:, case: or tsg:",
                self.at
            ));
        }
        if let Some(case) = &self.case {
            let input = case.input(&self.at, sr_response)?;
            return Ok(vec![(at, Input::Case(input))]);
        }
        if let Some(t) = &self.tsg {
            let outcome =
                crate::incident::TsgOutcome::parse_report(&t.status).ok_or_else(|| {
                    format!(
                        "input at {}: tsg.status is {:?}: expected succeeded or failed",
                        self.at, t.status
                    )
                })?;
            return Ok(vec![(
                at,
                Input::TsgReport {
                    incident_id: t.incident,
                    outcome,
                    note: t.note.clone(),
                    by: t.by.clone(),
                },
            )]);
        }
        if let Some(a) = &self.ack {
            return Ok(vec![(
                at,
                Input::Ack {
                    incident_id: a.incident,
                    by: a.by.clone(),
                },
            )]);
        }
        if let Some(r) = &self.resolve {
            return Ok(vec![(
                at,
                Input::Resolve {
                    incident_id: r.incident,
                    by: r.by.clone(),
                    note: r.note.clone(),
                },
            )]);
        }
        if let Some(s) = &self.severity {
            return Ok(vec![(
                at,
                Input::SetSeverity {
                    incident_id: s.incident,
                    severity: s.severity,
                    by: s.by.clone(),
                    reason: s.reason.clone(),
                },
            )]);
        }
        let until = match &self.until {
            Some(u) => parse_at(u, start)?,
            None => at,
        };
        let every = self.every.filter(|d| !d.is_zero());
        if self.until.is_some() && every.is_none() {
            return Err(format!("input at {}: until: needs every:", self.at));
        }
        let mut times = vec![at];
        if let Some(every) = every {
            let mut t = at + every.chrono();
            while t <= until && times.len() < 100_000 {
                times.push(t);
                t += every.chrono();
            }
        }
        let mut out = Vec::with_capacity(times.len());
        for t in times {
            if let Some(name) = &self.heartbeat {
                out.push((t, Input::Heartbeat(name.clone())));
                continue;
            }
            let source = self.source.expect("checked above");
            let signal = self.signal(source, t, start, sr_response, sequence)?;
            out.push((t, Input::Signals(vec![signal])));
        }
        Ok(out)
    }

    fn signal(
        &self,
        source: SourceKind,
        at: DateTime<Utc>,
        start: DateTime<Utc>,
        sr_response: &SrResponseConfig,
        sequence: &mut u64,
    ) -> Result<Signal, String> {
        if source == SourceKind::Cri {
            *sequence += 1;
            let sr = self.labels.get("sr_severity").cloned().unwrap_or_default();
            let deadline = sr_response.deadline(&sr).ok_or_else(|| {
                format!("CRI at {}: label sr_severity must be A, B or C", self.at)
            })?;
            let cri = CriDetails {
                id: format!("cri-{sequence}"),
                sr_severity: sr,
                contact: self.contact.clone().unwrap_or_default(),
                received_at: at,
                respond_by: at + deadline.chrono(),
            };
            return Ok(Signal::customer_report(
                self.labels.clone(),
                self.summary.clone(),
                cri,
            ));
        }
        let mut signal = Signal::new(source, self.labels.clone(), at);
        signal.annotations = std::sync::Arc::new(self.annotations.clone().into());
        signal.value = self.value;
        signal.state = self.state.unwrap_or(SignalState::Firing);
        signal.probe = self.probe.clone().map(Box::new);
        if source == SourceKind::Probe && signal.probe.is_none() {
            return Err(format!(
                "probe input at {}: needs probe: {{ success: … }}",
                self.at
            ));
        }
        if let Some(ends) = &self.ends_at {
            signal.expires_at = Some(parse_at(ends, start)?);
        }
        if let Some(lease) = self.lease {
            signal.expires_at = Some(at + lease.chrono());
        }
        Ok(signal)
    }
}
