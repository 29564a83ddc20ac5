//! `tocsin check` on broken config and rule files: every error printed as
//! `file:line:column: message`, exit status 1. Each case is what an SRE might really write.

use std::path::Path;
use std::process::Command;

/// Write the files, run `tocsin check`, return (exit code, stdout, stderr lines).
fn check(config: &str, rules: &[(&str, &str)]) -> (i32, String, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("tocsin.yaml"), config).unwrap();
    for (name, body) in rules {
        std::fs::write(dir.path().join("rules").join(name), body).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--config"])
        .arg(dir.path().join("tocsin.yaml"))
        .output()
        .expect("run tocsin check");
    let stderr = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|l| l.replace(&format!("{}/", dir.path().display()), ""))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into(),
        stderr,
        dir,
    )
}

/// Each error with the line it points at and a caret under its column, for failures.
fn annotated(dir: &Path, errors: &[&String]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(e);
        out.push('\n');
        let mut parts = e.splitn(4, ':');
        let (Some(file), Some(line), Some(col)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(col)) = (line.parse::<usize>(), col.parse::<usize>()) else {
            continue;
        };
        if let Some(text) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.lines().nth(line - 1).map(str::to_string))
        {
            out.push_str(&format!(
                "    {text}\n    {}^\n",
                " ".repeat(col.saturating_sub(1))
            ));
        }
    }
    out
}

/// Assert that the errors are exactly `expected` (paths relative to the temp folder).
fn assert_errors(config: &str, rules: &[(&str, &str)], expected: &[&str]) {
    let (code, _, stderr, dir) = check(config, rules);
    let errors: Vec<&String> = stderr.iter().filter(|l| !l.ends_with("error(s)")).collect();
    let shown = annotated(dir.path(), &errors);
    assert_eq!(code, 1, "exit status; errors:\n{shown}");
    assert_eq!(errors.len(), expected.len(), "errors:\n{shown}");
    for (got, want) in errors.iter().zip(expected) {
        assert_eq!(got.as_str(), *want, "errors:\n{shown}");
    }
}

const RULES_GLOB: &str = "rule_files: [ \"rules/*.yaml\" ]\n";

#[test]
fn valid_files_pass() {
    let (code, stdout, stderr, _dir) = check(
        RULES_GLOB,
        &[("ok.yaml", "groups:\n  - name: g\n    rules:\n      - { name: A, match: ['source=\"alert\"'], impact: { kind: outage } }\n")],
    );
    assert_eq!(code, 0, "{stderr:?}");
    assert!(stdout.contains("OK (1 rules in 1 rule files"), "{stdout}");
    let shipped = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tocsin.yaml"))
        .output()
        .unwrap();
    assert!(
        shipped.status.success(),
        "{}",
        String::from_utf8_lossy(&shipped.stderr)
    );
}

#[test]
fn invalid_yaml_syntax() {
    assert_errors(
        "server:\n  listen: [127.0.0.1\n",
        &[],
        &["tocsin.yaml:3:1: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 2 column 11"],
    );
}

#[test]
fn unknown_fields_in_config_and_rules() {
    assert_errors(
        &format!("{RULES_GLOB}severs: {{}}\nserver:\n  listn: 127.0.0.1:1\n"),
        &[("r.yaml", "groups:\n  - name: g\n    rules:\n      - name: A\n        fro: 5m\n        impact: { kind: outage }\n")],
        &[
            "tocsin.yaml:2:1: unknown field \"severs\", expected one of server, store, rule_files, catalog, probes, probing, sources, heartbeats, correlation, incidents, classification, sr_response, responders, schedules, time_windows, escalation_policies, routes, silences, notifiers",
            "tocsin.yaml:4:3: unknown field \"listn\", expected one of \"listen\", \"external_url\", \"auth\", \"ack_secret_file\", \"ack_link_ttl\", \"rate_limit\"",
            "rules/r.yaml:5:9: unknown field \"fro\", expected one of \"name\", \"match\", \"when\", \"for\", \"failures\", \"clear_for\", \"successes\", \"impact\", \"labels\", \"summary\"",
        ],
    );
}

#[test]
fn bad_durations() {
    assert_errors(
        "incidents: { resolve_after: 5 }\ncorrelation: { window: 1h5x }\n",
        &[],
        &[
            "tocsin.yaml:1:29: invalid duration 5: a duration needs a unit, e.g. 5s or 5m",
            "tocsin.yaml:2:24: invalid duration \"1h5x\": expected numbers with units ms, s, m, h, d, w or y, largest first, e.g. 30s, 5m, 1h30m",
        ],
    );
}

#[test]
fn bad_matchers_and_regexes() {
    assert_errors(
        &format!("{RULES_GLOB}escalation_policies: [ {{ name: p, levels: [ {{ notify: [ 'webhook:x' ] }} ] }} ]\nnotifiers: {{ webhooks: [ {{ name: x, url: 'http://127.0.0.1:1/' }} ] }}\nroutes:\n  - {{ match: [ 'severity=~\"(0|1\"' ], policy: p }}\n"),
        &[("r.yaml", "groups:\n  - name: g\n    rules:\n      - { name: A, match: [ 'service=storage\"' ], impact: {} }\n")],
        &[
            "tocsin.yaml:5:16: invalid matcher \"severity=~\\\"(0|1\\\"\": bad regular expression: error: unclosed group",
            "rules/r.yaml:4:29: invalid matcher \"service=storage\\\"\": the value must be quoted; expected name, one of = != =~ !~, and a quoted value, e.g. service=\"storage\" or region=~\"china-.*\"",
        ],
    );
}

#[test]
fn bad_cel() {
    assert_errors(
        RULES_GLOB,
        &[(
            "r.yaml",
            "groups:\n  - name: g\n    rules:\n      - name: A\n        when: \"probe.success &&\"\n        impact: {}\n      - name: B\n        when: \"prob.latency_ms > 1\"\n        impact: {}\n",
        )],
        &[
            "rules/r.yaml:5:15: invalid CEL in when \"probe.success &&\": ERROR: <input>:1:17: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
            "rules/r.yaml:8:15: invalid CEL in when \"prob.latency_ms > 1\": unknown variable \"prob\", expected one of labels, annotations, value, source, probe",
        ],
    );
}

#[test]
fn bad_cron_and_time_zone() {
    assert_errors(
        "time_windows:\n  - { name: a, timezone: Asia/Shanghia, start: '0 0 9 * * Mon', duration: 9h }\n  - { name: b, timezone: UTC, start: '0 9 * * 1-5', duration: 9h }\n  - { name: c, timezone: UTC, start: '0 0 25 * * *', duration: 1h }\n",
        &[],
        &[
            "tocsin.yaml:2:26: unknown time zone \"Asia/Shanghia\": expected an IANA name such as Asia/Shanghai or UTC",
            "tocsin.yaml:3:38: invalid cron expression \"0 9 * * 1-5\": it has 5 fields, but tocsin's cron has seconds first: \"sec min hour day-of-month month day-of-week\", e.g. \"0 0 9 * * Mon\"",
            "tocsin.yaml:4:38: invalid cron expression \"0 0 25 * * *\": Hours must be less than 23. ('25' specified.)",
        ],
    );
}

#[test]
fn unknown_references() {
    let config = "\
notifiers:
  email: { from: tocsin@example.com, file: { dir: out } }
  webhooks: [ { name: chatops, url: 'http://127.0.0.1:1/hook' } ]
responders:
  - { id: alice, email: alice@example.com, webhook: chatop }
schedules:
  - { name: primary, timezone: UTC, handoff: '0 0 9 * * Mon', start: 2026-01-05T09:00:00Z, participants: [alice, carol] }
time_windows: [ { name: business-hours, timezone: UTC, start: '0 0 9 * * Mon-Fri', duration: 9h } ]
escalation_policies:
  - name: storage
    levels:
      - { after: 0s, notify: [ 'schedule:primry', 'responder:bob', 'webhook:pager', 'team:sre' ] }
routes:
  - { match: [ 'severity=\"1\"' ], policy: storag }
  - { match: [ 'severity=\"3\"' ], policy: storage, active_during: [ busines-hours ] }
silences: [ { match: [ 'service=\"batch\"' ], window: maintenance } ]
";
    assert_errors(
        config,
        &[],
        &[
            "tocsin.yaml:5:53: unknown webhook \"chatop\": not defined in notifiers.webhooks",
            "tocsin.yaml:7:114: unknown responder \"carol\": not defined in responders",
            "tocsin.yaml:12:32: unknown schedule \"primry\": not defined in schedules",
            "tocsin.yaml:12:51: unknown responder \"bob\": not defined in responders",
            "tocsin.yaml:12:68: unknown webhook \"pager\": not defined in notifiers.webhooks",
            "tocsin.yaml:12:85: invalid target \"team:sre\": expected responder:ID, schedule:NAME or webhook:NAME",
            "tocsin.yaml:14:42: unknown escalation policy \"storag\": not defined in escalation_policies",
            "tocsin.yaml:15:68: unknown time window \"busines-hours\": not defined in time_windows",
            "tocsin.yaml:16:53: unknown time window \"maintenance\": not defined in time_windows",
        ],
    );
}

#[test]
fn duplicate_names() {
    let rule = |name: &str| {
        format!("groups:\n  - name: g\n    rules:\n      - {{ name: {name}, impact: {{}} }}\n")
    };
    assert_errors(
        &format!("{RULES_GLOB}probes:\n  - {{ name: web, kind: tcp, url: 'tcp://127.0.0.1:1' }}\n  - {{ name: web, kind: tcp, url: 'tcp://127.0.0.1:2' }}\n"),
        &[("a.yaml", &rule("Down")), ("b.yaml", &rule("Down"))],
        &[
            "tocsin.yaml:4:13: duplicate probe \"web\" (first defined at line 3, column 13)",
            "rules/b.yaml:4:17: duplicate rule name \"Down\" (first defined at rules/a.yaml:4:17)",
        ],
    );
}

#[test]
fn timeouts_not_shorter_than_intervals() {
    assert_errors(
        "probes:\n  - { name: web, kind: http, url: 'http://127.0.0.1:1/', interval: 10s, timeout: 10s }\nsources:\n  prometheus: [ { name: prom, url: 'http://127.0.0.1:9090', interval: 15s, timeout: 1m } ]\n",
        &[],
        &[
            "tocsin.yaml:2:82: timeout 10s must be shorter than the interval 10s of probe \"web\"",
            "tocsin.yaml:4:85: timeout 1m must be shorter than the interval 15s of source \"prom\"",
        ],
    );
}

#[test]
fn wrong_types_and_values() {
    assert_errors(
        "probes:\n  - { name: web, kind: smtp, url: 'x' }\nclassification: { major_customers: many }\nescalation_policies: [ { name: p, repeat: -1, levels: [] } ]\n",
        &[],
        &[
            "tocsin.yaml:2:24: unknown variant \"smtp\", expected \"http\" or \"tcp\"",
            "tocsin.yaml:3:36: invalid type: string \"many\", expected usize",
            "tocsin.yaml:4:43: invalid value: integer \"-1\", expected u32",
        ],
    );
}

#[test]
fn rule_logic_errors() {
    assert_errors(
        RULES_GLOB,
        &[(
            "r.yaml",
            "groups:\n  - name: g\n    rules:\n      - { name: A, for: 1m, failures: 3, impact: { kind: outage } }\n      - { name: B, impact: { kind: meltdown } }\n      - { name: C, impact: { severity: 7 } }\n      - { name: D, impact: {}, summary: '{{ labels.region ' }\n",
        )],
        &[
            "rules/r.yaml:4:39: set either for: (a duration) or failures: (a count), not both",
            "rules/r.yaml:5:36: unknown variant \"meltdown\", expected one of \"outage\", \"degradation\", \"latency\", \"data_loss\", \"data_corruption\", \"security\", \"other\"",
            "rules/r.yaml:6:40: invalid severity 7: expected 0 (disaster) to 4 (not urgent)",
            "rules/r.yaml:7:41: invalid summary template: unexpected end of input, expected end of variable block",
        ],
    );
}

#[test]
fn route_and_paging_shape_errors() {
    assert_errors(
        "routes:\n  - { match: [ 'severity=\"4\"' ] }\n  - { match: [], policy: p, queue: q }\nescalation_policies: [ { name: p, levels: [] } ]\nresponders: [ { id: ghost } ]\n",
        &[],
        &[
            "tocsin.yaml:2:5: a route needs policy: (page) or queue: (triage queue)",
            "tocsin.yaml:3:36: a route takes either policy or queue, not both",
            "tocsin.yaml:4:43: an escalation policy needs at least one level",
            "tocsin.yaml:5:15: responder \"ghost\" has neither email nor webhook: they cannot be paged",
        ],
    );
}

#[test]
fn missing_rule_file_and_bad_store() {
    assert_errors(
        "rule_files: [ rules/storage.yaml ]\nstore: { url: 'mysql://127.0.0.1/tocsin' }\n",
        &[],
        &[
            "tocsin.yaml:1:15: rule file rules/storage.yaml does not exist",
            "tocsin.yaml:2:15: invalid store url \"mysql://127.0.0.1/tocsin\": expected sqlite://PATH or postgres://…",
        ],
    );
}

// ----- check --store ----------------------------------------------------------------------

/// `tocsin check --store` on a config whose store is `data/tocsin.db` beside it, after
/// `prepare` has had the folder: exit code, stdout, stderr, the folder.
fn check_store(prepare: impl FnOnce(&Path)) -> (i32, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tocsin.yaml"),
        "store: { url: \"sqlite://data/tocsin.db\" }\n",
    )
    .unwrap();
    prepare(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--store", "--config"])
        .arg(dir.path().join("tocsin.yaml"))
        .output()
        .expect("run tocsin check --store");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
        dir,
    )
}

/// The number of SQLite migrations this tocsin has.
fn sqlite_schema() -> usize {
    std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"))
        .unwrap()
        .count()
}

/// A store as today's engine leaves it, then `sql` run on it.
fn store_then(folder: &Path, sql: &str) {
    let url = format!("sqlite://{}/data/tocsin.db", folder.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = tocsin::store::Store::open(&url).await.unwrap();
        store.close().await;
    });
    if !sql.is_empty() {
        let conn = rusqlite::Connection::open(folder.join("data/tocsin.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

#[test]
fn check_store_before_the_first_start_creates_nothing() {
    let (code, stdout, stderr, dir) = check_store(|_| {});
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "no store at sqlite://{}/data/tocsin.db yet: this tocsin creates it at schema version {} when it starts",
            dir.path().display(),
            sqlite_schema()
        )),
        "{stdout}"
    );
    assert!(!dir.path().join("data").exists(), "no folder made");
}

#[test]
fn check_store_on_a_store_of_today() {
    let (code, stdout, stderr, dir) = check_store(|folder| store_then(folder, ""));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "store at sqlite://{}/data/tocsin.db is at schema version {}: up to date",
            dir.path().display(),
            sqlite_schema()
        )),
        "{stdout}"
    );
}

#[test]
fn check_store_refuses_a_store_newer_than_this_tocsin() {
    let (code, stdout, stderr, _dir) = check_store(|folder| {
        store_then(
            folder,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from a later tocsin', 1, x'00', 0)",
        )
    });
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "is at schema version 99; this tocsin knows versions up to {}: the store was written by a newer tocsin (migrations 99 unknown here)",
            sqlite_schema()
        )),
        "{stderr}"
    );
}

#[test]
fn check_store_refuses_a_migration_applied_with_other_contents() {
    let (code, _, stderr, _dir) = check_store(|folder| {
        store_then(
            folder,
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
        )
    });
    assert_eq!(code, 1);
    assert!(
        stderr.contains("but migrations 2 were applied with other contents than this tocsin's"),
        "{stderr}"
    );
}

#[test]
fn check_store_on_what_is_no_tocsin_store() {
    let (code, _, stderr, _dir) = check_store(|folder| {
        std::fs::create_dir_all(folder.join("data")).unwrap();
        std::fs::write(
            folder.join("data/tocsin.db"),
            "not a database, a text file\n".repeat(200),
        )
        .unwrap();
    });
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read the store at sqlite://"),
        "{stderr}"
    );
    assert!(stderr.contains("file is not a database"), "{stderr}");

    let (code, _, stderr, _dir) = check_store(|folder| {
        std::fs::create_dir_all(folder.join("data")).unwrap();
        let conn = rusqlite::Connection::open(folder.join("data/tocsin.db")).unwrap();
        conn.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
            .unwrap();
    });
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no record of tocsin's migrations: not a tocsin store"),
        "{stderr}"
    );
}
