//! The runtime that wires the stages: a pure [`core::Core`] driven by a clock, fed by
//! sources and the API, persisting through the store before anything is sent.

pub mod core;
pub mod forward;
pub mod inbox;
pub mod leader;
pub mod leadership;
pub mod lease_expiries;
pub mod open_counts;
pub mod reload;
pub mod retention;
pub mod runtime;
pub mod secrets;
pub mod setup;
pub mod summary;
pub mod timers;
pub mod watchdog;

pub use self::core::{CaseInput, Changes, Core, Input, Reply, Snapshot};
pub use crate::clock::Clock;
pub use runtime::{EngineError, EngineHandle};
pub use setup::Setup;
