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
use crate::output::{outln, times};
use crate::words::count;

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
    /// Every support case opened so far, in id order (only the fields given are compared).
    #[serde(default)]
    pub cases: Option<Vec<ExpectedCase>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCase {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub response_breached: Option<bool>,
    /// The kinds of its timeline entries so far, in order (`opened`, `paged`, `responded`,
    /// `engagement_due`, …).
    #[serde(default)]
    pub timeline: Option<Vec<String>>,
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
    /// The support case it is about.
    #[serde(default)]
    pub case: Option<i64>,
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

fn check(sim: &Simulation, expectation: &Expectation, start: DateTime<Utc>, report: &mut String) {
    let at = &expectation.at;
    let mut problems = Vec::new();
    if let Some(expected) = &expectation.incidents {
        let actual: Vec<&Incident> = sim.incidents.values().collect();
        if expected.len() != actual.len() {
            problems.push(format!(
                "expected {}, got {}",
                count(expected.len(), "incident", "incidents"),
                actual.len()
            ));
        }
        for (i, (want, got)) in expected.iter().zip(actual.iter()).enumerate() {
            compare_incident(i, want, got, start, &mut problems);
        }
        if !problems.is_empty() {
            let listing: Vec<String> = actual
                .iter()
                .map(|i| format!("      {}", super::describe(i)))
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
                "expected {}, got {}",
                count(expected.len(), "page", "pages"),
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
            if let Some(w) = want.case {
                let g = got.case_id.map_or_else(|| "none".into(), |c| c.to_string());
                diff("case", w.to_string(), g);
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
                    Ok(t) => diff("created at", times().show(t), times().show(got.created_at)),
                    Err(e) => problems.push(format!("page {}: {e}", i + 1)),
                }
            }
        }
        if problems.len() > before {
            let listing: Vec<String> = actual
                .iter()
                .map(|p| {
                    format!(
                        "      +{} {}",
                        crate::config::Duration(
                            (p.created_at - start).to_std().unwrap_or_default()
                        ),
                        super::describe_page(p)
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
    if let Some(expected) = &expectation.cases {
        check_cases(sim, expected, at, &mut problems);
    }
    if !problems.is_empty() {
        let _ = writeln!(report, "  at {at}:");
        for p in problems {
            let _ = writeln!(report, "    {p}");
        }
    }
}

fn check_cases(sim: &Simulation, expected: &[ExpectedCase], at: &str, problems: &mut Vec<String>) {
    let before = problems.len();
    let actual: Vec<&crate::incident::case::Case> = sim.cases.values().collect();
    if expected.len() != actual.len() {
        problems.push(format!(
            "expected {} case(s), got {}",
            expected.len(),
            actual.len()
        ));
    }
    let kinds = |id: i64| -> Vec<String> {
        sim.case_timeline
            .iter()
            .filter(|e| e.case_id == id)
            .map(|e| e.kind.clone())
            .collect()
    };
    for (i, (want, got)) in expected.iter().zip(actual.iter()).enumerate() {
        let mut diff = |field: &str, w: String, g: String| {
            if w != g {
                problems.push(format!(
                    "case {} (#{}): {field}: expected {w}, got {g}",
                    i + 1,
                    got.id
                ));
            }
        };
        if let Some(w) = want.id {
            diff("id", w.to_string(), got.id.to_string());
        }
        if let Some(w) = &want.status {
            diff("status", w.clone(), got.status.as_str().to_string());
        }
        if let Some(w) = &want.owner {
            diff("owner", w.clone(), got.owner.clone());
        }
        if let Some(w) = want.response_breached {
            diff(
                "response_breached",
                w.to_string(),
                got.response_breached.to_string(),
            );
        }
        if let Some(w) = &want.timeline {
            diff("timeline", format!("{w:?}"), format!("{:?}", kinds(got.id)));
        }
    }
    if problems.len() > before {
        let listing: Vec<String> = actual
            .iter()
            .map(|c| {
                format!(
                    "      #{} SR {} {} owner {} timeline {:?}",
                    c.id,
                    c.sr_severity,
                    c.status.as_str(),
                    c.owner,
                    kinds(c.id)
                )
            })
            .collect();
        problems.push(format!(
            "cases at {at}:\n{}",
            if listing.is_empty() {
                "      (none)".to_string()
            } else {
                listing.join("\n")
            }
        ));
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
        diff("title", format!("\"{w}\""), format!("\"{}\"", got.title));
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
        diff("services", names(&w), names(got.services.iter()));
    }
    if let Some(w) = &want.regions {
        let mut w = w.clone();
        w.sort();
        diff("regions", names(&w), names(got.regions.iter()));
    }
    if let Some(w) = &want.customers {
        let mut w = w.clone();
        w.sort();
        diff("customers", names(&w), names(got.customers.iter()));
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
                times().show(t),
                got.respond_by
                    .map(|r| times().show(r))
                    .unwrap_or_else(|| "none".into()),
            ),
            Err(e) => diff("respond_by", e, String::new()),
        }
    }
    if let Some(w) = &want.labels {
        for (k, v) in w {
            diff(
                &format!("labels.{k}"),
                format!("\"{v}\""),
                match got.labels.get(k) {
                    Some(got) => format!("\"{got}\""),
                    None => "no such label".to_string(),
                },
            );
        }
    }
}

/// Names as a person lists them: "china-east, china-north", or "none".
fn names<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    match names.len() {
        0 => "none".to_string(),
        _ => names.join(", "),
    }
}
