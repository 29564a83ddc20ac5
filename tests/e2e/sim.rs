//! `tocsin test` and `tocsin replay` as a user runs them.

use std::path::Path;
use std::process::Command;

fn tocsin(args: &[&str]) -> (i32, String) {
    tocsin_in(args, "UTC")
}

/// Run the real binary with `TZ` set to `zone`; (exit code, stdout then stderr).
fn tocsin_in(args: &[&str], zone: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env("TZ", zone)
        .output()
        .expect("run tocsin");
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn the_shipped_rule_tests_pass() {
    let (code, out) = tocsin(&[
        "test",
        "tests/rules/lsi_severity.yaml",
        "tests/rules/lifecycle.yaml",
        "tests/rules/correlation.yaml",
        "tests/rules/updates.yaml",
        "tests/rules/reopen.yaml",
        "tests/rules/dependencies.yaml",
        "tests/rules/correlation_separate.yaml",
        "tests/rules/triage_queues.yaml",
        "tests/rules/tsg.yaml",
        "tests/rules/sla_burn.yaml",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("59 passed, 0 failed"), "{out}");
}

#[test]
fn a_failing_rule_test_prints_a_diff_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tocsin.yaml");
    let file = dir.path().join("wrong.yaml");
    std::fs::write(
        &file,
        format!(
            "config: {}\ntests:\n  - name: wrong severity\n    input:\n      - {{ at: 0s, source: alert, labels: {{ alertname: A, severity: critical, service: storage, region: china-east }} }}\n    expect:\n      - {{ at: 1m, incidents: [ {{ severity: 1, regions: [china-north] }} ] }}\n",
            config.display()
        ),
    )
    .unwrap();
    let (code, out) = tocsin(&["test", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("severity: expected 1, got 2"), "{out}");
    assert!(
        out.contains("regions: expected china-north, got china-east"),
        "{out}"
    );
    assert!(
        out.contains("Sev 2 incident #1, triggered: A in storage china-east; services storage; regions china-east; 2 customers"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
    assert_plain(&out);
}

/// No Rust debug output: no braces, brackets, `Some(`, quoted lists or struct names.
fn assert_plain(out: &str) {
    for debug in [
        "{",
        "}",
        "[",
        "]",
        "Some(",
        "None",
        "\\\"",
        "Incident",
        "Page ",
        "Recipient",
    ] {
        assert!(!out.contains(debug), "{debug:?} in:\n{out}");
    }
}

#[test]
fn replay_prints_incidents_and_pages_over_time() {
    let (code, out) = tocsin(&[
        "replay",
        "--utc",
        "--config",
        "config/tocsin.yaml",
        "tests/replay/storage-outage.jsonl",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_plain(&out);
    let lines: Vec<&str> = out.lines().collect();
    let find = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
    };
    let opened = find("Sev 2 incident #1 opened: StorageDown in storage china-east (SLA breached)");
    assert!(
        lines[opened].starts_with("2026-01-05 02:00:00 UTC  "),
        "{}",
        lines[opened]
    );
    let first_page = find("incident #1: alice paged by email (triggered, level 0)");
    let raised = find(
        "incident #1 severity raised from Sev 2 to Sev 1 (major impact on 2 customers across 2 regions and 1 service)",
    );
    assert!(
        lines[raised].starts_with("2026-01-05 02:06:00 UTC"),
        "{}",
        lines[raised]
    );
    let acked = find("incident #1 acknowledged by alice");
    let resolved = find("incident #1 resolved by tocsin");
    // Both leases run out 5m after the last refresh at 02:20, then resolve_after is 5m.
    assert!(
        lines[resolved].starts_with("2026-01-05 02:30:00 UTC"),
        "{}",
        lines[resolved]
    );
    assert!(opened < first_page && first_page < raised && raised < acked && acked < resolved);
    assert!(out.contains("\n1 incident, 4 pages\n"), "{out}");
    assert!(
        out.contains("  Sev 1 incident #1, resolved: StorageDown in storage china-east; services storage; regions china-east, china-north; 2 customers\n"),
        "{out}"
    );
}

#[test]
fn replay_prints_times_in_the_local_zone_with_its_name() {
    let args = [
        "replay",
        "--config",
        "config/tocsin.yaml",
        "tests/replay/storage-outage.jsonl",
    ];
    let (code, out) = tocsin_in(&args, "America/New_York");
    assert_eq!(code, 0, "{out}");
    // 02:00 UTC on 5 January is 21:00 the day before in New York, in winter time.
    assert!(
        out.starts_with("2026-01-04 21:00:00 EST  Sev 2 incident #1 opened: "),
        "{out}"
    );
    let (_, out) = tocsin_in(&args, "Asia/Kolkata");
    assert!(out.starts_with("2026-01-05 07:30:00 IST  "), "{out}");
}

#[test]
fn replay_measures_a_fast_burn_below_sla() {
    let (code, out) = tocsin(&[
        "replay",
        "--config",
        "tests/replay/sla-burn.yaml",
        "tests/replay/sla-burn.jsonl",
    ]);
    assert_eq!(code, 0, "{out}");
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
            .to_string()
    };
    assert!(
        line("Sev 4 incident #1 opened").starts_with("2026-01-05 06:00:07 UTC"),
        "the first failure burns little:\n{out}"
    );
    // The ninth failure: 9 of the 1449 probes of six hours fail, a 6.2x burn.
    let measured = line("sla breached");
    assert!(
        measured.starts_with("2026-01-05 06:04:07 UTC"),
        "{measured}"
    );
    assert!(
        measured.ends_with(
            "below SLA, measured: storage/eu-west availability 99.38% over 30d (SLA 99.9%); \
             burn 36.6x over 1h, 6.2x over 6h"
        ),
        "{measured}"
    );
    assert!(line("severity raised from Sev 4 to Sev 2 (SLA breached)")
        .starts_with("2026-01-05 06:04:07 UTC"));
    assert!(line("alice paged by email (severity raised").starts_with("2026-01-05 06:04:07 UTC"));
    assert!(out.contains("Sev 2 incident #1, resolved"), "{out}");
}
