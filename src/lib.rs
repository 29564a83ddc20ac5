//! tocsin: a live-site incident alerting engine.

pub mod config;
