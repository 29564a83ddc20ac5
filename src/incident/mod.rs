//! Incidents: correlating impacts, classifying them Sev 0–4, and their lifecycle.

pub mod catalog;
pub mod classify;
pub mod correlate;
pub mod model;
pub mod resolution;

pub use catalog::Catalog;
pub use classify::{classify, Blast};
pub use model::{Impact, Incident, IncidentView, NameSet, Status, TimelineEntry};
