//! Paging: who is paged, when, and how.
//!
//! The decisions (routes, escalation, schedules, windows, silences) are pure; `notify/`
//! delivers pages by email and webhook.

pub mod ack_link;
pub mod context;
pub mod decide;
pub mod escalate;
pub mod ics;
pub mod notice;
pub mod notify;
pub mod page;
pub mod queue;
pub mod route;
pub mod schedule;
pub mod silence;
pub mod state;
pub mod steps;
pub mod tsg;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{Config, ResponderConfig, RouteConfig, SilenceConfig};
pub use ack_link::AckSigner;
pub use context::PageContext;
pub use escalate::{Escalation, LevelPage, PolicySnapshot};
pub use page::{Channel, Page, PageEvent, PagePayload, Recipient};
pub use schedule::{OnCall, Rotation, ScheduleOverride};
pub use silence::{Silence, SilenceState};
pub use state::{MergedNews, PagedEntry, PagingState};
pub use window::{Window, WindowSet};

/// Everything paging needs from the config, compiled.
#[derive(Clone, Debug, Default)]
pub struct Paging {
    pub routes: Vec<RouteConfig>,
    pub policies: HashMap<String, Arc<PolicySnapshot>>,
    pub windows: HashMap<String, Window>,
    pub rotations: Vec<Rotation>,
    pub silences: Vec<SilenceConfig>,
    /// Silences made at run time (see [`Paging::with_live`]).
    pub live_silences: Vec<Silence>,
    pub responders: HashMap<String, ResponderConfig>,
}

impl Paging {
    pub fn new(config: &Config) -> Self {
        Paging {
            routes: config.routes.clone(),
            policies: config
                .escalation_policies
                .iter()
                .map(|p| (p.name.clone(), Arc::new(PolicySnapshot::new(p))))
                .collect(),
            windows: config
                .time_windows
                .iter()
                .map(|w| (w.name.clone(), Window::new(w)))
                .collect(),
            rotations: config.schedules.iter().map(Rotation::new).collect(),
            silences: config.silences.clone(),
            live_silences: Vec::new(),
            responders: config
                .responders
                .iter()
                .map(|r| (r.id.clone(), r.clone()))
                .collect(),
        }
    }

    /// This config with the silences and overrides made at run time: each override goes
    /// after its schedule's configured ones, so it wins where they overlap.
    pub fn with_live(&self, silences: &[Silence], overrides: &[ScheduleOverride]) -> Paging {
        let mut out = self.clone();
        out.live_silences = silences.to_vec();
        for rotation in &mut out.rotations {
            rotation.overrides.extend(
                overrides
                    .iter()
                    .filter(|o| o.schedule == rotation.name)
                    .map(ScheduleOverride::as_override),
            );
        }
        out
    }

    pub fn window_set(&self, names: &[String]) -> WindowSet<'_> {
        WindowSet {
            windows: names.iter().filter_map(|n| self.windows.get(n)).collect(),
        }
    }

    pub fn rotation(&self, name: &str) -> Option<&Rotation> {
        self.rotations.iter().find(|r| r.name == name)
    }

    /// The next moment after `t` when who is on call may change in some schedule.
    pub fn next_shift_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.rotations.iter().filter_map(|r| r.next_change(t)).min()
    }

    /// The shifts that begin in `(from, to]` in every schedule.
    pub fn shifts_beginning(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<OnCall> {
        self.rotations
            .iter()
            .flat_map(|r| r.shifts_beginning(from, to))
            .collect()
    }

    /// The zone a responder's pages are written in: their own `timezone`, else that of the
    /// schedule among `targets` (the paging level's) they are in, else of any schedule they
    /// are in, else UTC.
    pub fn zone_for(&self, responder: &str, targets: &[String]) -> chrono_tz::Tz {
        if let Some(zone) = self
            .responders
            .get(responder)
            .and_then(|r| r.timezone.as_ref())
        {
            return zone.0;
        }
        let member = |r: &&Rotation| {
            r.participants.iter().any(|p| p == responder)
                || r.overrides.iter().any(|o| o.responder == responder)
        };
        let named = targets
            .iter()
            .filter_map(|t| t.strip_prefix("schedule:"))
            .filter_map(|name| self.rotation(name))
            .find(member);
        named
            .or_else(|| self.rotations.iter().find(member))
            .map(|r| r.tz)
            .unwrap_or(chrono_tz::Tz::UTC)
    }

    /// Who is on call in every schedule at `t`.
    pub fn on_call(&self, t: DateTime<Utc>) -> Vec<OnCall> {
        self.rotations.iter().filter_map(|r| r.on_call(t)).collect()
    }

    /// Each channel responder `id` is reached on; `None` when it is not configured.
    pub fn channels_of(&self, id: &str) -> Option<Vec<Recipient>> {
        self.responders.get(id).map(|r| self.responder_channels(r))
    }

    fn responder_channels(&self, responder: &ResponderConfig) -> Vec<Recipient> {
        let mut out = Vec::new();
        if let Some(email) = &responder.email {
            out.push(Recipient {
                id: responder.id.clone(),
                channel: Channel::Email,
                address: email.clone(),
            });
        }
        if let Some(hook) = &responder.webhook {
            out.push(Recipient {
                id: responder.id.clone(),
                channel: Channel::Webhook,
                address: hook.clone(),
            });
        }
        out
    }

    /// The recipients a notify target means at `t`; an error says why nobody is reachable.
    pub fn recipients(&self, target: &str, t: DateTime<Utc>) -> Result<Vec<Recipient>, String> {
        match target.split_once(':') {
            Some(("responder", id)) => self
                .responders
                .get(id)
                .map(|r| self.responder_channels(r))
                .ok_or_else(|| format!("responder {id:?} is not configured")),
            Some(("schedule", name)) => {
                let rotation = self
                    .rotation(name)
                    .ok_or_else(|| format!("schedule {name:?} is not configured"))?;
                let on_call = rotation
                    .on_call(t)
                    .ok_or_else(|| format!("nobody is on call in schedule {name:?}"))?;
                self.responders
                    .get(&on_call.responder)
                    .map(|r| self.responder_channels(r))
                    .ok_or_else(|| format!("responder {:?} is not configured", on_call.responder))
            }
            Some(("webhook", name)) => Ok(vec![Recipient {
                id: target.to_string(),
                channel: Channel::Webhook,
                address: name.to_string(),
            }]),
            _ => Err(format!("invalid target {target:?}")),
        }
    }
}
