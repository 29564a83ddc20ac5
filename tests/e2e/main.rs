//! The end-to-end tests, one binary: a module per topic, and the harness they share
//! (`support`). Run one topic with `cargo test --test e2e TOPIC::`, e.g.
//! `cargo test --test e2e paging::`.
//!
//! The fuzz targets stay a binary of their own (`tests/fuzz.rs`): the test command runs
//! them alone with `--nocapture`, each target runs its inputs in a child process of that
//! binary, and `fuzz/fuzz_targets/*.rs` include `tests/fuzz_support/targets.rs` by path.

mod support;

mod ack_links;
mod admin;
mod api;
mod api_edges;
mod backup;
mod case_pages;
mod cases;
mod channels;
mod check;
mod cli;
mod cluster;
mod crash;
mod dashboard;
mod email;
mod engine;
mod grafana;
mod hostile;
mod install;
mod notify_steps;
mod oncall;
mod operate;
mod outage;
mod page_content;
mod paging;
mod reliability;
mod reload;
mod resolve;
mod retention;
mod security;
mod silences;
mod sim;
mod sla;
mod sources;
mod sr_report;
mod status;
mod store;
mod store_lock;
mod store_upgrade;
mod templates;
mod triage;
mod tsg;
mod upgrade;
mod watchdog;
