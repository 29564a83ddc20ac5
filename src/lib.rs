//! tocsin: a live-site incident alerting engine.
//!
//! The flow: `sources` produce signals, `rules` turn them into impacts, `incident` groups and
//! classifies impacts, `paging` decides who is paged, `paging::notify` delivers, and `store`
//! keeps every step durable. `engine` wires the stages, on one `clock`; `app` starts them;
//! `api` and `cli` are the interfaces.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decode;
pub mod engine;
pub mod incident;
pub mod metrics;
pub mod output;
pub mod paging;
pub mod rules;
pub mod signal;
pub mod sim;
pub mod sources;
pub mod store;
pub mod words;
