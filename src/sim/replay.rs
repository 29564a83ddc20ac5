//! `tocsin replay --config F SIGNALS.jsonl`: recorded signals through the rules on a
//! simulated clock; prints what would have happened, in order.
//!
//! Each line is a JSON object of the same shape as a `tocsin test` input, with `at` an
//! RFC 3339 time (or an offset from the first line).

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::input::TimedInput;
use super::Simulation;
use crate::engine::Setup;

pub fn run(config: &Path, signals: &Path) -> ExitCode {
    let config = match crate::config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    match replay(config, signals) {
        Ok(output) => {
            crate::output::write(&output);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin replay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run the replay and return the printed report.
pub fn replay(config: crate::config::Config, signals: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(signals)
        .map_err(|e| format!("cannot read {}: {e}", signals.display()))?;
    let mut inputs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let input: TimedInput = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: {e}", signals.display(), n + 1))?;
        inputs.push((n + 1, input));
    }
    let start = inputs
        .iter()
        .find_map(|(_, i)| DateTime::parse_from_rfc3339(&i.at).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| {
            DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        });
    let setup = Setup::new(config, Some(b"tocsin-replay".to_vec()));
    let mut events = Vec::new();
    let mut sequence = 0;
    for (line, input) in &inputs {
        for (at, event) in input
            .expand(start, &setup.config.sr_response, &mut sequence)
            .map_err(|e| format!("{}:{line}: {e}", signals.display()))?
        {
            events.push((at, *line, event));
        }
    }
    events.sort_by_key(|(at, line, _)| (*at, *line));
    let end = events.last().map(|(at, _, _)| *at).unwrap_or(start);
    let mut sim = Simulation::new(setup, start);
    for (at, _, event) in events {
        sim.advance_to(at);
        sim.input(event);
    }
    // Let timers run out for a day after the last signal (auto-resolve, escalations).
    sim.advance_to(end + chrono::Duration::hours(24));

    let times = crate::output::times();
    let mut lines: Vec<(DateTime<Utc>, usize, String)> = Vec::new();
    for (i, entry) in sim.timeline.iter().enumerate() {
        // Each page has a line of its own, below.
        if matches!(entry.kind.as_str(), "paged") {
            continue;
        }
        lines.push((entry.at, i, super::describe_entry(entry)));
    }
    let mut offset = sim.timeline.len();
    for (i, entry) in sim.case_timeline.iter().enumerate() {
        if entry.kind == "paged" {
            continue;
        }
        lines.push((
            entry.at,
            offset + i,
            format!(
                "case #{} {}: {}",
                entry.case_id,
                entry.kind.replace('_', " "),
                entry.message
            ),
        ));
    }
    offset += sim.case_timeline.len();
    for (i, page) in sim.pages.iter().enumerate() {
        lines.push((page.created_at, offset + i, super::describe_page(page)));
    }
    lines.sort_by_key(|(at, i, _)| (*at, *i));
    let mut out = String::new();
    for (at, _, line) in &lines {
        out.push_str(&format!("{}  {line}\n", times.show(*at)));
    }
    let incidents = crate::words::count(sim.incidents.len(), "incident", "incidents");
    let pages = crate::words::count(sim.pages.len(), "page", "pages");
    out.push_str(&format!("\n{incidents}, {pages}\n"));
    for incident in sim.incidents.values() {
        out.push_str(&format!("  {}\n", super::describe(incident)));
    }
    if !sim.cases.is_empty() {
        let cases = crate::words::count(sim.cases.len(), "case", "cases");
        out.push_str(&format!("\n{cases}\n"));
        for case in sim.cases.values() {
            out.push_str(&format!(
                "  SR {} case #{}, {}: owner {}; {} {} {}\n",
                case.sr_severity,
                case.id,
                case.status.as_str(),
                case.owner,
                case.customer,
                case.service,
                case.region
            ));
        }
    }
    Ok(out)
}
