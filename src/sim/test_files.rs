//! `tocsin test FILE...`: rule unit tests, like `promtool test rules`.
//!
//! A test file names a config (a path, relative to the test file, or the config inline),
//! then lists tests: timed inputs and the incidents (and optionally pages) expected at
//! evaluation times. docs/rules.md documents the format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::input::{parse_at, TimedInput};
use super::Simulation;
use crate::config::{self, Config};
use crate::engine::Setup;
use crate::incident::Incident;
use crate::output::outln;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// A config file (relative to the test file) or the config itself, inline.
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
    /// Simulated start time (default 2026-01-05T10:00:00Z, a Monday morning in UTC).
    #[serde(default)]
    pub start: Option<String>,
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub input: Vec<TimedInput>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub at: String,
    /// Every incident opened so far, in the order they were opened.
    #[serde(default)]
    pub incidents: Option<Vec<ExpectedIncident>>,
    /// Every page created so far, in order (only the fields given are compared).
    #[serde(default)]
    pub pages: Option<Vec<ExpectedPage>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedIncident {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub severity: Option<u8>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub pinned: Option<bool>,
    #[serde(default)]
    pub services: Option<Vec<String>>,
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    #[serde(default)]
    pub customers: Option<Vec<String>>,
    #[serde(default)]
    pub customer_count: Option<usize>,
    #[serde(default)]
    pub queue: Option<String>,
    /// Every queue it waits in (`[]`: none).
    #[serde(default)]
    pub queues: Option<Vec<String>>,
    /// Its TSG link (`none`: no TSG).
    #[serde(default)]
    pub tsg: Option<String>,
    /// Its TSG action: `running`, `succeeded`, `failed`, `timed_out` or `none`.
    #[serde(default)]
    pub tsg_action: Option<String>,
    #[serde(default)]
    pub respond_by: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedPage {
    #[serde(default)]
    pub incident: Option<i64>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub level: Option<usize>,
    /// When it was created (offset from start or RFC 3339).
    #[serde(default)]
    pub at: Option<String>,
}

const DEFAULT_START: &str = "2026-01-05T10:00:00Z";

pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    let mut passed = 0;
    for file in files {
        match run_file(file) {
            Ok(results) => {
                for (name, outcome) in results {
                    match outcome {
                        Ok(()) => {
                            passed += 1;
                            outln!("ok   {}: {name}", file.display());
                        }
                        Err(diff) => {
                            failed += 1;
                            outln!("FAIL {}: {name}\n{diff}", file.display());
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                outln!("FAIL {}: {e}", file.display());
            }
        }
    }
    outln!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Load the config a test file names (or holds inline).
fn test_config(file: &Path, value: Option<&serde_yaml::Value>) -> Result<Config, String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    match value {
        None => config::load_str(&dir.join("inline-config.yaml"), "").map_err(|e| e.to_string()),
        Some(serde_yaml::Value::String(path)) => {
            config::load(&dir.join(path)).map_err(|e| e.to_string())
        }
        Some(inline) => {
            let text = serde_yaml::to_string(inline).map_err(|e| e.to_string())?;
            config::load_str(&dir.join("inline-config.yaml"), &text).map_err(|e| e.to_string())
        }
    }
}

/// Run every test of a file: (name, Ok or a readable diff).
/// Each test's name and its outcome: Ok, or a readable diff.
pub type Outcomes = Vec<(String, Result<(), String>)>;

pub fn run_file(file: &Path) -> Result<Outcomes, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let parsed: TestFile =
        serde_yaml::from_str(&text).map_err(|e| format!("invalid test file: {e}"))?;
    let config = test_config(file, parsed.config.as_ref())?;
    // Ack links are signed with a throwaway key: tests compare everything but them.
    let setup = Setup::new(config, Some(b"tocsin-test".to_vec()));
    let file_start = parsed.start.as_deref().unwrap_or(DEFAULT_START);
    let mut results = Vec::new();
    for case in &parsed.tests {
        let start_text = case.start.as_deref().unwrap_or(file_start);
        let outcome = DateTime::parse_from_rfc3339(start_text)
            .map_err(|e| format!("  start {start_text:?} is not RFC 3339: {e}"))
            .and_then(|start| run_case(&setup, case, start.with_timezone(&Utc)));
        results.push((case.name.clone(), outcome));
    }
    Ok(results)
}

fn run_case(
    setup: &std::sync::Arc<Setup>,
    case: &TestCase,
    start: DateTime<Utc>,
) -> Result<(), String> {
    let mut events = Vec::new();
    let mut sequence = 0;
    for (i, input) in case.input.iter().enumerate() {
        for (at, event) in input
            .expand(start, &setup.config.sr_response, &mut sequence)
            .map_err(|e| format!("  input {i}: {e}"))?
        {
            events.push((at, 0u8, i, Some(event)));
        }
    }
    let mut checks = Vec::new();
    for (i, expectation) in case.expect.iter().enumerate() {
        let at = parse_at(&expectation.at, start).map_err(|e| format!("  expect {i}: {e}"))?;
        // Checks at a time run after the inputs of that time.
        events.push((at, 1, i, None));
        checks.push(at);
    }
    events.sort_by_key(|(at, order, i, _)| (*at, *order, *i));
    let mut sim = Simulation::new(std::sync::Arc::clone(setup), start);
    let mut report = String::new();
    for (at, _, index, event) in events {
        sim.advance_to(at);
        match event {
            Some(input) => {
                sim.input(input);
            }
            None => {
                let expectation = &case.expect[index];
                check(&sim, expectation, start, &mut report);
            }
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

fn show(incident: &Incident) -> String {
    format!(
        "#{} Sev {} {}{} services={:?} regions={:?} customers={} {:?}",
        incident.id,
        incident.severity,
        incident.status.as_str(),
        if incident.pinned { " (pinned)" } else { "" },
        incident.services,
        incident.regions,
        incident.customers.len(),
        incident.title
    )
}

fn check(sim: &Simulation, expectation: &Expectation, start: DateTime<Utc>, report: &mut String) {
    let at = &expectation.at;
    let mut problems = Vec::new();
    if let Some(expected) = &expectation.incidents {
        let actual: Vec<&Incident> = sim.incidents.values().collect();
        if expected.len() != actual.len() {
            problems.push(format!(
                "expected {} incident(s), got {}",
                expected.len(),
                actual.len()
            ));
        }
        for (i, (want, got)) in expected.iter().zip(actual.iter()).enumerate() {
            compare_incident(i, want, got, start, &mut problems);
        }
        if !problems.is_empty() {
            let listing: Vec<String> = actual
                .iter()
                .map(|i| format!("      {}", show(i)))
                .collect();
            problems.push(format!(
                "incidents at {at}:\n{}",
                if listing.is_empty() {
                    "      (none)".to_string()
                } else {
                    listing.join("\n")
                }
            ));
        }
    }
    if let Some(expected) = &expectation.pages {
        let before = problems.len();
        let actual = &sim.pages;
        if expected.len() != actual.len() {
            problems.push(format!(
                "expected {} page(s), got {}",
                expected.len(),
                actual.len()
            ));
        }
        for (i, (want, got)) in expected.iter().zip(actual.iter()).enumerate() {
            let mut diff = |field: &str, w: String, g: String| {
                if w != g {
                    problems.push(format!("page {}: {field}: expected {w}, got {g}", i + 1));
                }
            };
            if let Some(w) = want.incident {
                diff("incident", w.to_string(), got.incident_id.to_string());
            }
            if let Some(w) = &want.event {
                diff("event", w.clone(), got.event.to_string());
            }
            if let Some(w) = &want.recipient {
                diff("recipient", w.clone(), got.recipient.id.clone());
            }
            if let Some(w) = &want.channel {
                diff(
                    "channel",
                    w.clone(),
                    got.recipient.channel.as_str().to_string(),
                );
            }
            if let Some(w) = want.level {
                diff(
                    "level",
                    w.to_string(),
                    got.level
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "none".into()),
                );
            }
            if let Some(w) = &want.at {
                match parse_at(w, start) {
                    Ok(t) => diff("created at", t.to_rfc3339(), got.created_at.to_rfc3339()),
                    Err(e) => problems.push(format!("page {}: {e}", i + 1)),
                }
            }
        }
        if problems.len() > before {
            let listing: Vec<String> = actual
                .iter()
                .map(|p| {
                    format!(
                        "      +{} incident {} {} → {} ({}) level {}",
                        crate::config::Duration(
                            (p.created_at - start).to_std().unwrap_or_default()
                        ),
                        p.incident_id,
                        p.event,
                        p.recipient.id,
                        p.recipient.channel.as_str(),
                        p.level.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
                    )
                })
                .collect();
            problems.push(format!(
                "pages at {at}:\n{}",
                if listing.is_empty() {
                    "      (none)".to_string()
                } else {
                    listing.join("\n")
                }
            ));
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(report, "  at {at}:");
        for p in problems {
            let _ = writeln!(report, "    {p}");
        }
    }
}

fn compare_incident(
    i: usize,
    want: &ExpectedIncident,
    got: &Incident,
    start: DateTime<Utc>,
    problems: &mut Vec<String>,
) {
    let n = i + 1;
    let mut diff = |field: &str, w: String, g: String| {
        if w != g {
            problems.push(format!(
                "incident {n} (#{}): {field}: expected {w}, got {g}",
                got.id
            ));
        }
    };
    if let Some(w) = want.id {
        diff("id", w.to_string(), got.id.to_string());
    }
    if let Some(w) = &want.title {
        diff("title", format!("{w:?}"), format!("{:?}", got.title));
    }
    if let Some(w) = want.severity {
        diff("severity", w.to_string(), got.severity.to_string());
    }
    if let Some(w) = &want.status {
        diff("status", w.clone(), got.status.as_str().to_string());
    }
    if let Some(w) = want.pinned {
        diff("pinned", w.to_string(), got.pinned.to_string());
    }
    if let Some(w) = &want.services {
        let mut w = w.clone();
        w.sort();
        diff(
            "services",
            format!("{w:?}"),
            format!("{:?}", got.services.iter().collect::<Vec<_>>()),
        );
    }
    if let Some(w) = &want.regions {
        let mut w = w.clone();
        w.sort();
        diff(
            "regions",
            format!("{w:?}"),
            format!("{:?}", got.regions.iter().collect::<Vec<_>>()),
        );
    }
    if let Some(w) = &want.customers {
        let mut w = w.clone();
        w.sort();
        diff(
            "customers",
            format!("{w:?}"),
            format!("{:?}", got.customers.iter().collect::<Vec<_>>()),
        );
    }
    if let Some(w) = want.customer_count {
        diff(
            "customer_count",
            w.to_string(),
            got.customers.len().to_string(),
        );
    }
    if let Some(w) = &want.queue {
        diff(
            "queue",
            w.clone(),
            got.queue.clone().unwrap_or_else(|| "none".into()),
        );
    }
    if let Some(w) = &want.queues {
        diff(
            "queues",
            format!("{w:?}"),
            format!("{:?}", got.queues().collect::<Vec<_>>()),
        );
    }
    if let Some(w) = &want.tsg {
        diff(
            "tsg",
            w.clone(),
            got.tsg.clone().unwrap_or_else(|| "none".into()),
        );
    }
    if let Some(w) = &want.tsg_action {
        let got = match got.tsg_action.as_deref() {
            None => "none",
            Some(a) => a.outcome.map(|o| o.as_str()).unwrap_or("running"),
        };
        diff("tsg_action", w.clone(), got.to_string());
    }
    if let Some(w) = &want.respond_by {
        match parse_at(w, start) {
            Ok(t) => diff(
                "respond_by",
                t.to_rfc3339(),
                got.respond_by
                    .map(|r| r.to_rfc3339())
                    .unwrap_or_else(|| "none".into()),
            ),
            Err(e) => diff("respond_by", e, String::new()),
        }
    }
    if let Some(w) = &want.labels {
        for (k, v) in w {
            diff(
                &format!("labels.{k}"),
                format!("{v:?}"),
                format!("{:?}", got.labels.get(k)),
            );
        }
    }
}
