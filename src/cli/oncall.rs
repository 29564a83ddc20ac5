//! `tocsin oncall [--at T]`: who is on call in every schedule.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::output::outln;
use crate::paging::Paging;

pub fn run(config: &Path, at: Option<&str>) -> ExitCode {
    let config = match crate::config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let at = match at {
        None => Utc::now(),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!("tocsin: --at {text:?} is not an RFC 3339 time ({e}), e.g. 2026-03-08T09:00:00-05:00");
                return ExitCode::FAILURE;
            }
        },
    };
    let paging = Paging::new(&config);
    outln!(
        "{:<24} {:<16} {:<26} UNTIL",
        "SCHEDULE",
        "RESPONDER",
        "SINCE"
    );
    for rotation in &paging.rotations {
        match rotation.on_call(at) {
            Some(on_call) => outln!(
                "{:<24} {:<16} {:<26} {}",
                on_call.schedule,
                on_call.responder,
                on_call.since.to_rfc3339(),
                on_call
                    .until
                    .map(|u| u.to_rfc3339())
                    .unwrap_or_else(|| "-".into())
            ),
            None => outln!("{:<24} {:<16} {:<26} -", rotation.name, "(nobody)", "-"),
        }
    }
    ExitCode::SUCCESS
}
