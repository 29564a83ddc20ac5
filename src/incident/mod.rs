//! Incidents: correlating impacts, classifying them Sev 0–4, and their lifecycle.

pub mod blast;
pub mod case;
pub mod catalog;
pub mod classify;
pub mod correlate;
pub mod lifecycle;
pub mod model;
pub mod report;
pub mod sla;
pub mod timeline;
pub mod tsg_action;

pub use blast::Blast;
pub use catalog::Catalog;
pub use classify::classify;
pub use model::{Impact, Incident, IncidentView, NameSet, Status};
pub use timeline::{Entry, TimelineEntry};
pub use tsg_action::{TsgAction, TsgOutcome};
