//! Pages: one message to one recipient over one channel, stored before it is sent.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::incident::case::CasePayload;
use crate::incident::IncidentView;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageEvent {
    Triggered,
    Escalated,
    SeverityRaised,
    Acknowledged,
    Resolved,
    ResponseBreached,
    /// An impact joined an incident after its first page.
    ImpactAdded,
    /// Another incident was merged into this one.
    Merged,
    /// An incident that resolved on its own opened again.
    Reopened,
    /// `tocsin test-page`: a responder checks a channel; no incident behind it.
    Test,
    /// A shift began: the responder now on call hears of it and of the open incidents.
    ShiftStarted,
    /// A person made this responder the incident's assignee.
    Assigned,
    /// A person added this responder to the incident.
    ResponderAdded,
    /// A support case's update is due (to its owner).
    EngagementDue,
    /// A support case went a second interval without an update (by its policy).
    EngagementMissed,
    /// A case update sent to the customer's case owner.
    CustomerUpdate,
    /// A TSG action's webhook is asked to run its mitigation (see [`TsgCall`]).
    TsgAction,
}

impl PageEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            PageEvent::Triggered => "triggered",
            PageEvent::Escalated => "escalated",
            PageEvent::SeverityRaised => "severity_raised",
            PageEvent::Acknowledged => "acknowledged",
            PageEvent::Resolved => "resolved",
            PageEvent::ResponseBreached => "response_breached",
            PageEvent::ImpactAdded => "impact_added",
            PageEvent::Merged => "merged",
            PageEvent::Reopened => "reopened",
            PageEvent::Test => "test",
            PageEvent::ShiftStarted => "shift_started",
            PageEvent::Assigned => "assigned",
            PageEvent::ResponderAdded => "responder_added",
            PageEvent::EngagementDue => "engagement_due",
            PageEvent::EngagementMissed => "engagement_missed",
            PageEvent::CustomerUpdate => "customer_update",
            PageEvent::TsgAction => "tsg_action",
        }
    }
}

impl PageEvent {
    /// Does a page of this event call someone to act (the pager load counts these)? Notices
    /// of what others did (acknowledged, resolved, merged, impact added, shift started),
    /// test pages and updates to customers do not.
    pub fn calls_to_act(self) -> bool {
        matches!(
            self,
            PageEvent::Triggered
                | PageEvent::Escalated
                | PageEvent::SeverityRaised
                | PageEvent::ResponseBreached
                | PageEvent::Reopened
                | PageEvent::Assigned
                | PageEvent::ResponderAdded
                | PageEvent::EngagementDue
                | PageEvent::EngagementMissed
        )
    }
}

/// The rule the pager load counts a page under: that of the impact that opened its
/// incident; pages about a support case count under `(case)`.
pub const CASE_RULE: &str = "(case)";

/// Was `at` night (22:00-07:00) on the clock of `zone`?
pub fn at_night(at: DateTime<Utc>, zone: chrono_tz::Tz) -> bool {
    use chrono::Timelike;
    crate::incident::report::is_night_hour(at.with_timezone(&zone).hour())
}

impl fmt::Display for PageEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        match text {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            _ => None,
        }
    }
}

/// Someone (or something) that receives pages over one channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Recipient {
    /// The responder id, or `webhook:NAME` for a bare webhook target.
    pub id: String,
    pub channel: Channel,
    /// The email address, or the webhook's name.
    pub address: String,
}

/// The JSON body a webhook receives (and the email is written from).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PagePayload {
    pub version: String,
    pub event: PageEvent,
    pub incident: IncidentView,
    pub escalation: EscalationRef,
    pub recipient: String,
    pub ack_url: Option<String>,
    /// What the page says, in words and links (absent from pages stored by older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::paging::PageContext>,
    /// The support case a case page is about; its `incident` is then the case's incident
    /// as far as the case knows it (id 0 while it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<Box<CasePayload>>,
    /// A TSG action's call (event `tsg_action`): the TSG, and where the action reports back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsg_action: Option<Box<TsgCall>>,
}

/// What a TSG action is asked to do: run the mitigation of TSG `url` for the incident (whose
/// impacts the page's `context` lists) and report back to `report_url` by `deadline`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TsgCall {
    pub url: String,
    /// Whose TSG it is: `rule NAME` or `service NAME`.
    pub from: String,
    /// `POST {status: succeeded | failed, note}` here (a responder's token).
    pub report_url: String,
    pub deadline: DateTime<Utc>,
}

impl PagePayload {
    /// What the page says: the context it was made with, else one from the incident alone.
    pub fn context(&self) -> std::borrow::Cow<'_, crate::paging::PageContext> {
        match &self.context {
            Some(context) => std::borrow::Cow::Borrowed(context),
            None => std::borrow::Cow::Owned(crate::paging::PageContext::from_view(
                self.event,
                &self.incident,
                &self.recipient,
                self.ack_url.as_deref(),
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EscalationRef {
    pub policy: Option<String>,
    pub level: Option<usize>,
}

/// A page as stored in the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub id: i64,
    /// Stable across retries and engine takeovers: receivers dedupe on it.
    pub delivery_id: String,
    /// 0 for a page about a support case (see `case_id`).
    pub incident_id: i64,
    /// The support case a page is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<i64>,
    pub event: PageEvent,
    pub recipient: Recipient,
    pub level: Option<usize>,
    pub payload: PagePayload,
    pub created_at: DateTime<Utc>,
}
