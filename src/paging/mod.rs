//! Paging: who is paged, when, and how.
//!
//! The decisions (routes, escalation, schedules, windows, silences) are pure; `notify/`
//! delivers pages by email and webhook.

pub mod ack_link;
pub mod decide;
pub mod escalate;
pub mod notify;
pub mod page;
pub mod queue;
pub mod route;
pub mod schedule;
pub mod state;
pub mod tsg;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{Config, ResponderConfig, RouteConfig, SilenceConfig};
pub use ack_link::AckSigner;
pub use escalate::{Escalation, LevelPage, PolicySnapshot};
pub use page::{Channel, Page, PageEvent, PagePayload, Recipient};
pub use schedule::{OnCall, Rotation};
pub use state::PagingState;
pub use window::{Window, WindowSet};

/// Everything paging needs from the config, compiled.
#[derive(Clone, Debug, Default)]
pub struct Paging {
    pub routes: Vec<RouteConfig>,
    pub policies: HashMap<String, Arc<PolicySnapshot>>,
    pub windows: HashMap<String, Window>,
    pub rotations: Vec<Rotation>,
    pub silences: Vec<SilenceConfig>,
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
            responders: config
                .responders
                .iter()
                .map(|r| (r.id.clone(), r.clone()))
                .collect(),
        }
    }

    pub fn window_set(&self, names: &[String]) -> WindowSet<'_> {
        WindowSet {
            windows: names.iter().filter_map(|n| self.windows.get(n)).collect(),
        }
    }

    pub fn rotation(&self, name: &str) -> Option<&Rotation> {
        self.rotations.iter().find(|r| r.name == name)
    }

    /// Who is on call in every schedule at `t`.
    pub fn on_call(&self, t: DateTime<Utc>) -> Vec<OnCall> {
        self.rotations.iter().filter_map(|r| r.on_call(t)).collect()
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
